from newsflow.cli import main

main()
