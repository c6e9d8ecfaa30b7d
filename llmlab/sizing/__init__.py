"""How much memory a model needs and how many GPUs serve it: the memory model (``memory``),
this machine and one model (``hardware``), replicas and GPUs for a target load (``capacity``)."""
