"""Analysis and synthesis transforms (g_a, g_s), one file per family."""
