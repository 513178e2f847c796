"""Maintainer scripts that made the models shipped in facelab/models/weights/ (not part of the facelab package:
nothing at run time imports them, and the wheel does not carry them). Each model card in facelab/models/cards/
gives the commands, run from the repository root. The user-facing training lab is facelab/train/."""
