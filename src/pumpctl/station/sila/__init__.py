"""The station's SiLA 2 face (the `sila2` package): features, their implementations, the server.

`sila2` is imported before anything else here: it switches protobuf to its pure-Python
implementation, which must happen before any other module imports `google.protobuf`.
"""

import sila2  # noqa: F401  (import order, see above)
