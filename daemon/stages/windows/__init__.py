"""Window helpers shared by the stages: per-sensor grouping of a batch, sliding min/max/mean."""
