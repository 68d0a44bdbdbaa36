"""How good an image generator is, as numbers: FID/KID, precision/recall and mode coverage (`image`),
in the feature space of a classifier or InceptionV3 (`features`), and the `evaluate` pipeline that
ties them to a trained model or an export (`evaluate`). Bits per character of the language models
are the text family's own (`text.metrics`)."""
