"""Hand-written C kernels for hot paths, built for this machine's CPU on first use.

Each kernel has a torch path beside it that gives the same results; the kernel is taken only when
it built and can take the call (``models.native.build`` says why it did not). Turn all of them off
with ``PARETONAS_NATIVE_KERNELS=0``.
"""
