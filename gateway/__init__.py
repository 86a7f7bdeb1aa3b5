"""The gateway: settings, the app factory, the pipeline, storage, coordination and workers."""
