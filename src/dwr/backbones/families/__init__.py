"""Backbone families, one file each: spec builders (``@register_model``) and the family's unit
list (``@register_family``). Every module here is imported on first use of the registry."""
