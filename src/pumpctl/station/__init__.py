"""A multi-pump station: one process supervising several pumps, reachable over SiLA 2.

`spec` (the station file), `station` (pumps, lines, checked runs), `pump` (one pump's runtime),
`sila` (the SiLA 2 server and its features). `pumpctl serve STATION.yaml` is the command.
"""
