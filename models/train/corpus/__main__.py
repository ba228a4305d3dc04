from models.train.corpus.build import main

main()
