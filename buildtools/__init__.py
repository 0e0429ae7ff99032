"""Build helpers that are not part of the model, the server or the add-on (``flowvq build-addon``)."""
