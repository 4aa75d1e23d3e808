from book.build import main

main()
