/* Loads an installed OBS plugin DLL as OBS does and looks up its module entry points;
 * test.sh cross-builds it with mingw-w64 and runs it under wine:
 *   test-loader.exe PLUGIN.dll NAME...
 * obs.dll and obs-frontend-api.dll must be found next to this program (test.sh puts no-op
 * stubs there). Only obs_module_ver is called: it returns a constant. obs_module_load and
 * the rest need a real libobs. Prints one line per check; exits 0 when every check passed. */
#include <stdio.h>
#include <string.h>
#include <windows.h>

typedef unsigned int (*module_ver_fn)(void);

int main(int argc, char **argv)
{
	HMODULE plugin;
	int failures = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s PLUGIN.dll NAME...\n", argv[0]);
		return 2;
	}
	/* As libobs's os_dlopen on Windows: the plugin's directory is added to the search
	 * (SetDllDirectory), then LoadLibrary, which also searches the program's directory
	 * (where obs.dll lives: OBS's bin\64bit) and System32. */
	char dir[MAX_PATH];
	char *slash;
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	slash = strrchr(dir, '\\');
	if (slash) {
		*slash = 0;
		SetDllDirectoryA(dir);
	}
	plugin = LoadLibraryA(argv[1]);
	SetDllDirectoryA(NULL);
	if (!plugin) {
		printf("FAIL LoadLibrary %s: error %lu\n", argv[1], GetLastError());
		return 1;
	}
	printf("ok   LoadLibrary %s\n", argv[1]);
	for (int i = 2; i < argc; i++) {
		FARPROC entry = GetProcAddress(plugin, argv[i]);
		printf("%s GetProcAddress %s\n", entry ? "ok  " : "FAIL", argv[i]);
		failures += !entry;
	}
	FARPROC ver = GetProcAddress(plugin, "obs_module_ver");
	if (ver) {
		/* The cast through void * silences -Wcast-function-type. */
		module_ver_fn module_ver = (module_ver_fn)(void *)ver;
		printf("obs_module_ver() = %u\n", module_ver());
	}
	/* A Rust DLL must unload cleanly too (OBS frees modules at exit). */
	if (!FreeLibrary(plugin)) {
		printf("FAIL FreeLibrary: error %lu\n", GetLastError());
		failures++;
	} else {
		printf("ok   FreeLibrary\n");
	}
	return failures ? 1 : 0;
}
