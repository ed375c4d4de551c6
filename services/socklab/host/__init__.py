"""The host side: code that runs on the machine, never inside a lab host.

Image builds (``build`` for the lab images, ``vm_image`` for the test VMs'
image, both made by ``rootfs``), the lab's lifecycle behind ``make up``
(``hostctl``), how many labs fit (``capacity``), running commands in
containers and reading what they use (``containers``), copies of lab hosts for
the tests and the bench (``labhosts``), test VMs (``vms``), the Swarm stack
file (``stack``) and the benchmark's orchestration (``bench``). None of it is
copied into the lab image (``services/.dockerignore``) or hashed into its tag,
so editing it rebuilds nothing. It may import the lab side's pure modules (the
registry, the protocol code); the lab side never imports it.
"""
