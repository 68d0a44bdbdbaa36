"""How good a generator is, as numbers: FID/KID, precision/recall and mode coverage for images
(`image`), in the feature space of a classifier or InceptionV3 (`features`), bits per character
for text (`text`), and the `evaluate` pipeline that ties them to a trained model (`evaluate`)."""
