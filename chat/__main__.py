from chat.cli.main import main

main()
