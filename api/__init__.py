"""The thin HTTP API: validates, records and enqueues jobs; never imports TensorFlow (``api.app.create_app``)."""
