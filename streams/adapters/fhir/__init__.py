"""FHIR R4 in. ``convert`` is the public module (``streams.adapters`` exports its
functions): ``convert_resource`` turns one decoded resource into canonical events,
``convert_json`` one JSON document, ``iter_fhir`` reads bytes (a resource, a Bundle, an
array, NDJSON).

Inside: ``context`` holds what every resource shares (references, times, ids, the site
mapping), ``scheduling`` and ``clinical`` map the resource types, ``resources`` is the
table of handlers by resource type, and ``convert`` reads documents and Bundles.
"""
