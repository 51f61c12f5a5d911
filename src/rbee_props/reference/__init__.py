"""A reference rbee stack written in Python to ``rbee-contract.md`` (its *intended* column).

Three real server programs, each started as its own OS process::

    python -m rbee_props.reference.queen  --port P --database FILE --token-file F
    python -m rbee_props.reference.hive   --addr HOST:PORT --name N --queen-url URL ...
    python -m rbee_props.reference.worker --worker-id ID --model-ref REF ...

They talk to each other over real HTTP, keep the beehive registry and the model catalog in real
SQLite files, and let planted bugs be switched on by name (``RBEE_REF_BUGS=dup-register,...``) so
that rbee-props can prove it finds each one. With no bug switched on they follow the contract.
"""
