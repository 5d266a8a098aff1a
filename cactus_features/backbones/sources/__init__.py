"""Backbone sources: each owns a family of registry names (see ``spec.BackboneSource``)."""
