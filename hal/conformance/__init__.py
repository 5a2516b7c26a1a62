"""The per-backend conformance suite, written once and run against every device: the device API
tests (api/) and onnx's node tests through hal.onnx_backend (onnx_node/), with and without
fallback, each backend's tolerances and known failures in a conformance.toml beside it.

    hal conformance ascend                               # both suites on ascend:0, summary
    hal conformance --all --report out/                  # report.html / .md / .json, every backend
    pytest --pyargs hal.conformance                      # the API suite on every registered device
    pytest --pyargs hal.conformance --hal-device ascend:0   # API + node suites on that device

A new backend, in-tree or from another package, gets the whole suite for free: the tests take a
`hal_device` fixture that the plugin (hal.conformance.plugin) parametrizes over the devices.
"""
