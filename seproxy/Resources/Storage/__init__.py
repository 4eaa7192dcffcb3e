"""DIRAC storage plugins provided by seproxy (loaded by DIRAC's ``StorageFactory``)."""
