"""Training one classifier: the losses, the loop, its checkpoints, and augmentation on the device.

Owns the loss registry (``losses``: CE, HCE and the hierarchy-aware family), the paper's training loop with early
stopping on validation hierarchy-corrected macro F1 (``loop``: ``train``, ``TrainSettings``), its resumable
checkpoints and the final ``model.pt``
(``checkpoints``), and scTab's augmentation of a minibatch (``augmentation``). May import root,
``hierarchy``, ``data``, ``models`` and ``evaluation`` (the selection metric); nothing imports it but the
train rule's script and the benchmarks.
"""
