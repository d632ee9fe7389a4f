"""Trained models: recommenders, generators, and the judges (classifiers) that score generated samples,
with the arrays they train on (``models.data``)."""
