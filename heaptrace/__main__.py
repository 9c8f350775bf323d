from heaptrace.cli import main

main()
