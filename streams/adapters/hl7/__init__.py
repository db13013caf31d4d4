"""HL7 v2 in. ``convert`` is the public module: ``convert_message`` turns one message
into canonical events, ``iter_hl7`` reads a byte stream of messages (a file, an archive,
an MLLP capture); ``streams.adapters`` exports both.

Inside: ``text`` splits and decodes the message text (segments, fields, times, field
paths), ``context`` holds what every message type shares (patient, ids, the site
mapping), ``scheduling`` and ``clinical`` map the message types, and ``convert`` picks
the handler for each message. This file imports nothing, so the site mapping can read
field paths from ``text`` without pulling in the converter that reads the mapping.
"""
