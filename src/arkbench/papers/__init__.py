"""Paper packages: each re-implements one paper's measurements, modules and stages."""
