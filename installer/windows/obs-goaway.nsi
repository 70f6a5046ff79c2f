; The Windows installer of the obs-goaway OBS Studio plugin (64-bit), built by build.sh:
;   makensis -DVERSION=0.1.0 -DVERSION4=0.1.0.0 -DSTAGE=<dir> -DLICENSE_FILE=<file>
;            -DOUTFILE=<setup.exe> [-DSIGN_CMD=<program>] obs-goaway.nsi
; STAGE holds obs-goaway.dll and locale/*.ini. Installs for every user where OBS Studio
; (29 or newer) looks for third-party plugins:
;   %ProgramData%\obs-studio\plugins\obs-goaway\bin\64bit\obs-goaway.dll
;   %ProgramData%\obs-studio\plugins\obs-goaway\data\locale\*.ini
;   %ProgramData%\obs-studio\plugins\obs-goaway\uninstall.exe
; and registers the uninstaller under Add/Remove Programs. Silent: setup.exe /S and
; uninstall.exe /S (the QuietUninstallString).

!macro Require NAME
  !ifndef ${NAME}
    !error "${NAME} is not defined: build.sh defines VERSION, VERSION4, STAGE, LICENSE_FILE and OUTFILE"
  !endif
!macroend
!insertmacro Require VERSION
!insertmacro Require VERSION4
!insertmacro Require STAGE
!insertmacro Require LICENSE_FILE
!insertmacro Require OUTFILE

; Code signing (README.md): with -DSIGN_CMD=<program>, makensis has <program> FILE sign the
; uninstaller before packing it and the finished installer; build.sh signs the DLL before.
!ifdef SIGN_CMD
  !uninstfinalize '"${SIGN_CMD}" "%1"' = 0
  !finalize '"${SIGN_CMD}" "%1"' = 0
!endif

Unicode true
Target amd64-unicode
ManifestSupportedOS all
ManifestDPIAware true
SetCompressor /SOLID lzma
RequestExecutionLevel admin

!define PLUGIN "obs-goaway"
!define PUBLISHER "obs-goaway developers"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${PLUGIN}"
!define OBS_KEY "SOFTWARE\OBS Studio"

Name "${PLUGIN} ${VERSION} for OBS Studio"
OutFile "${OUTFILE}"
; The real directory is set in .onInit: $APPDATA is ProgramData only for "all users".
InstallDir "$APPDATA\obs-studio\plugins\${PLUGIN}"
BrandingText "${PLUGIN} ${VERSION}"
ShowInstDetails show
ShowUninstDetails show

VIProductVersion "${VERSION4}"
VIAddVersionKey /LANG=1033 "ProductName" "${PLUGIN}"
VIAddVersionKey /LANG=1033 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "FileDescription" "${PLUGIN} ${VERSION} installer (OBS Studio plugin)"
VIAddVersionKey /LANG=1033 "CompanyName" "${PUBLISHER}"
VIAddVersionKey /LANG=1033 "LegalCopyright" "GPL-2.0-or-later"

!include MUI2.nsh
!include LogicLib.nsh
!include FileFunc.nsh

!define MUI_ABORTWARNING
!insertmacro MUI_PAGE_LICENSE "${LICENSE_FILE}"
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; OBS Studio's directory, or "" when it is not installed.
Var ObsDir

; OBS's installer writes its directory as the default value of HKLM\SOFTWARE\OBS Studio
; (64-bit view); portable or older installs may only exist in Program Files.
Function FindObs
  StrCpy $ObsDir ""
  ReadRegStr $0 HKLM "${OBS_KEY}" ""
  ${If} $0 != ""
  ${AndIf} ${FileExists} "$0\bin\64bit\obs64.exe"
    StrCpy $ObsDir $0
  ${ElseIf} ${FileExists} "$PROGRAMFILES64\obs-studio\bin\64bit\obs64.exe"
    StrCpy $ObsDir "$PROGRAMFILES64\obs-studio"
  ${EndIf}
FunctionEnd

Function .onInit
  SetShellVarContext all
  SetRegView 64
  StrCpy $INSTDIR "$APPDATA\obs-studio\plugins\${PLUGIN}"
  Call FindObs
  ${If} $ObsDir == ""
    ; Plugins live in ProgramData, not in OBS's directory: installing first is fine.
    MessageBox MB_OKCANCEL|MB_ICONEXCLAMATION \
      "OBS Studio was not found on this computer.$\r$\n$\r$\n${PLUGIN} will be installed in$\r$\n$INSTDIR$\r$\nand OBS Studio 29 or newer will load it once it is installed." \
      /SD IDOK IDOK +2
    Abort
  ${EndIf}
FunctionEnd

Section "${PLUGIN}" SecPlugin
  SectionIn RO
  ${If} $ObsDir == ""
    DetailPrint "OBS Studio not found (no HKLM\${OBS_KEY}, no $PROGRAMFILES64\obs-studio): installing anyway"
  ${Else}
    DetailPrint "OBS Studio found in $ObsDir"
  ${EndIf}

  SetOverwrite on
  SetOutPath "$INSTDIR\bin\64bit"
  File "/oname=${PLUGIN}.dll" "${STAGE}/${PLUGIN}.dll"
  ; An upgrade replaces every translation: none of an older version is left behind.
  Delete "$INSTDIR\data\locale\*.ini"
  SetOutPath "$INSTDIR\data\locale"
  File "${STAGE}/locale/*.ini"
  SetOutPath "$INSTDIR"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayName" "${PLUGIN} (OBS Studio plugin)"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegStr HKLM "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  ${If} $ObsDir != ""
    WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayIcon" "$ObsDir\bin\64bit\obs64.exe,0"
  ${Else}
    DeleteRegValue HKLM "${UNINSTALL_KEY}" "DisplayIcon"
  ${EndIf}
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "EstimatedSize" $0
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoRepair" 1
SectionEnd

Function un.onInit
  SetShellVarContext all
  SetRegView 64
FunctionEnd

; Removes what the installer wrote, then each directory only if it is empty (OBS's own
; plugins directory included: another plugin's files keep it).
Section "Uninstall"
  Delete "$INSTDIR\bin\64bit\${PLUGIN}.dll"
  RMDir "$INSTDIR\bin\64bit"
  RMDir "$INSTDIR\bin"
  Delete "$INSTDIR\data\locale\*.ini"
  RMDir "$INSTDIR\data\locale"
  RMDir "$INSTDIR\data"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  RMDir "$APPDATA\obs-studio\plugins"
  RMDir "$APPDATA\obs-studio"
  DeleteRegKey HKLM "${UNINSTALL_KEY}"
SectionEnd
