from depthcharge.cli import main

main()
