"""Help texts that several of ezctl's commands share."""
CLUSTER_HELP = "the cluster's name: its folder clusters/<cluster>/ in the base directory"
LAB_HELP = "the lab's name, which is also its cluster's (clusters/<cluster>/)"
