"""Tests of the Rasa project: training data, custom actions, the training helper."""
