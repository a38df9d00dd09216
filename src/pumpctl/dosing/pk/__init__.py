"""Pharmacology: population PK models as data, exact prediction, TCI controller, taper."""
