#ifndef AMANAT_CSODIUM_SHIM_H
#define AMANAT_CSODIUM_SHIM_H
#include <sodium.h>
#endif
