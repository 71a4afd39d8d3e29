from voicekit.cli.main import main

main()
