"""Device platforms entropy_verl adds to verl's platform registry (``verl.plugin.platform``)."""
