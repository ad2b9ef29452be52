"""How a sweep runs, apart from what a step computes (``training/``): the engine that
advances every member at once (``engine``: vmap, lax.map or a host loop, decided by
``engine.plan``), their split over devices (``sharding``) and hosts
(``distributed``), checkpoints, the ETA, and FLOP counts."""
