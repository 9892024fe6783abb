"""Recipes: one command trains, evaluates and exports each zoo model."""
