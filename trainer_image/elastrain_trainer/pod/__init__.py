"""What a trainer pod runs (``elastrain pod head|worker``), from the operator's environment contract."""
