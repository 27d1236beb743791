from godelctl.cli import main

main()
