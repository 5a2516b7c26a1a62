"""The per-backend conformance suite, written once and run against every device.

    pytest --pyargs hal.conformance                       # every registered device
    pytest --pyargs hal.conformance --hal-device ascend:0 # one device (repeatable, or comma list)

A new backend, in-tree or from another package, gets the whole suite for free: the tests take a
`hal_device` fixture that the plugin (hal.conformance.plugin) parametrizes over the devices.
"""
