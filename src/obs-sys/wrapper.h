#include <obs.h>
#include <obs-module.h>
#include <obs-frontend-api.h>
