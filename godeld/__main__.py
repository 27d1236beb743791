from godeld.cli import main

main()
