"""HL7 v2 intake: ER7 parsing into typed messages, storage, dispatch, MLLP listener.

The library is python-hl7 (``hl7``), chosen over hl7apy for its asyncio MLLP
server and client (``hl7.mllp``): the listener is one asyncio server that hands
database work to threads, with no thread per connection and no framing of our
own. hl7apy validates against HL7 profiles, which a receiver of many sites'
dialects does not want; its MLLP server is a thread-per-connection socketserver.
"""
