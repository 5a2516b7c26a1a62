"""onnx's node tests on hal devices: cases built in memory from the installed onnx (cases.py),
run on a device with or without fallback, or on the two baselines (run.py), and as pytest tests
(test_node.py, collected for the devices named with --hal-device)."""
