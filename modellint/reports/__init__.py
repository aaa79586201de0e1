"""Writers: pure functions from analysed models to text, JSON, ..."""
