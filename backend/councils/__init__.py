"""Council areas (GSS code, name, boundary): the scope of a council officer's reads and exports."""
