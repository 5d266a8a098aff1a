"""``python -m cactus_features`` runs the command line (also under ``torchrun``)."""

from cactus_features.cli import main

if __name__ == "__main__":
    main()
