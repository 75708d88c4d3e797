"""Problems with exact answers, the experiments that measure estimators on them, and the CLI ``run``."""
