"""The application layer: job options and their precedence, one job (load, task, driver, save,
sidecar), provenance, batch runs, simulations, reports and the demo."""
