"""What every room shares: attribute names and values (attributes), auto strength (strength), implied
attributes (implied), the model directory's manifest (manifest) and files written whole (files).

Standard library and numpy only: the torch-free engine, training, export and the benchmark all import it."""
