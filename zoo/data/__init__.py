"""Built-in datasets and data pipelines."""
