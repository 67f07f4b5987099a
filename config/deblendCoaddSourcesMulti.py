# Override for DeblendCoaddSourcesMultiTask: deblend with MADNESS instead of SCARLET.
# SCARLET stays as MADNESS's fallback for the parents it does not model (see doc/madness-deblend.md).
from lsst.meas.extensions.madness.deblend import MadnessDeblendTask

config.multibandDeblend.retarget(MadnessDeblendTask)
