"""Position templates as plug-ins: one module per ``template:`` name, each implementing
:class:`trimtab.templates.base.Template`, found and registered by :mod:`trimtab.templates.registry`.
See docs/templates.md ("How to add a template")."""
