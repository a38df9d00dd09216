"""What is true of a pump family whichever side of the wire you stand on.

The lowest layer of pumpctl next to `clock` and `log`: dosing (to quantize a plan), drivers (to
format what they send) and the simulator (to accept what the pump accepts) all read it; it imports
none of them.
"""
