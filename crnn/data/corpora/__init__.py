"""Readers for the corpus layouts of the big toolkits; each turns a layout into manifest rows
``{path, text, id, [offset], [duration], ...}``. ``crnn.data.manifest.read_manifest`` picks one."""
